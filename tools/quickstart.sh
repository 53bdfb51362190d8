#!/usr/bin/env bash
# Sets up, builds, and trains the seed's Fashion-MNIST MLP (784-64-64-10,
# Adam, sparse categorical cross-entropy, 5 epochs) on the best device
# found; prints test accuracy, throughput and where the model was saved.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

bash tools/bootstrap.sh
build=${LOOM_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release >/dev/null
fi
ninja -C "$build" >/dev/null

echo "== devices =="
"$build/tools/loom" devices
echo
if "$build/tools/loom" --help | grep -q '^  train'; then
  model=${LOOM_MODEL:-$here/fashion_mnist_mlp.safetensors}
  echo "== training the seed's MLP on Fashion-MNIST (device: ${LOOM_DEVICE:-auto}) =="
  "$build/tools/loom" train --epochs "${EPOCHS:-5}" --batch "${BATCH:-32}" --save "$model" "$@"
else
  echo "== MLP forward pass on the best device =="
  "$build/tools/loom" forward "$@"
fi
