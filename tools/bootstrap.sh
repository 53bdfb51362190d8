#!/usr/bin/env bash
# Installs the Debian 12 packages loom needs to build and test.
# Idempotent: skips what is present, runs apt-get update only when it must install.
set -euo pipefail

pkgs=(
  build-essential meson ninja-build pkg-config git
  check valgrind
  libopenblas-dev zlib1g-dev libcjson-dev
  libvulkan-dev glslc libshaderc-dev vulkan-validationlayers mesa-vulkan-drivers vulkan-tools
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd libclblast-dev clinfo
  libglfw3-dev libgl-dev libstb-dev xvfb xauth
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev
  libopenmpi-dev openmpi-bin
  libdnnl-dev
  dataset-fashion-mnist
)

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all ${#pkgs[@]} packages present"
  exit 0
fi

echo "bootstrap: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
