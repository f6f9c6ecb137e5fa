#!/usr/bin/env bash
# Installs every Debian 12 package scalevec needs (idempotent, no prompts) and builds in Release.
# usage: bash scripts/setup.sh [extra cmake args]    (run as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build git pkg-config
  libtorch-dev libgloo-dev libyaml-cpp-dev libspdlog-dev libgtest-dev
  libsentencepiece-dev sentencepiece
  libopenblas0-pthread   # BLAS for LibTorch: without it Debian falls back to reference BLAS (5x slower)
  bible-kjv              # the default embedded corpus (`bible` prints the KJV text)
  python3 python3-matplotlib python3-yaml   # sweeps and plots
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

build_dir="${BUILD_DIR:-build}"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
echo "setup: built $build_dir/scalevec"
