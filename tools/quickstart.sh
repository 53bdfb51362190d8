#!/usr/bin/env bash
# Sets up, builds, and trains the seed's Fashion-MNIST MLP (784-64-64-10,
# Adam, sparse categorical cross-entropy, 5 epochs) on the best device
# found; prints test accuracy, throughput and where the model was saved.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: tools/quickstart.sh [--help] [loom train options...]

Installs what is missing (tools/bootstrap.sh), builds loom, lists the
devices and trains the seed's Fashion-MNIST MLP, saving the model.
Options are passed on to `loom train` (see `loom train --help`).

environment: LOOM_BUILD_DIR (build), LOOM_MODEL (where the model is
saved), EPOCHS (5), BATCH (32), LOOM_DEVICE (auto)
EOF
}
for arg in "$@"; do
    case "$arg" in
    -h | --help) usage; exit 0 ;;
    esac
done

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
