#!/usr/bin/env bash
# Real exported models (resnet18, mobilenet_v2, a Transformer encoder, an
# LSTM classifier) in loom on every device beside onnxruntime, and loom's
# own export read by onnxruntime: tools/onnx_models.py in a throwaway venv.
#
#   tools/onnx_models.sh [--build DIR] [--venv DIR] [-- ARGS for onnx_models.py]
#
# The venv (default $LOOM_CACHE_DIR/onnx-models-venv) gets torch,
# torchvision, onnxruntime and onnx from PyPI (the CPU runs; PyPI's torch
# wheels carry CUDA libraries that stay unused). Not part of tools/test.sh:
# the CI path does not depend on PyPI.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$here/build
venv=${LOOM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/loom}/onnx-models-venv
TORCH=${TORCH_VERSION:-2.8.0}
TORCHVISION=${TORCHVISION_VERSION:-0.23.0}
ORT=${ORT_VERSION:-1.22.1}
ONNX=${ONNX_VERSION:-1.22.0}
while [ $# -gt 0 ]; do
    case "$1" in
    --build) build=$2; shift 2 ;;
    --venv) venv=$2; shift 2 ;;
    --) shift; break ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
    esac
done
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, torchvision, onnxruntime, onnx, numpy" 2>/dev/null; then
    "$venv/bin/pip" install --quiet "torch==$TORCH" "torchvision==$TORCHVISION" "onnxruntime==$ORT" "onnx==$ONNX" numpy
fi
out=$build/onnx-models
exec "$venv/bin/python" "$here/tools/onnx_models.py" --loom "$build/tools/loom" --out "$out" "$@"
