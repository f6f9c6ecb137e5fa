#!/usr/bin/env bash
# Installs every package scalevec needs (idempotent, no prompts) and builds in Release.
# usage: bash scripts/setup.sh [--cuda] [extra cmake args]     (run as root, or with sudo available)
#
#   Debian 12: LibTorch 1.13.1 CPU.     Debian 13: LibTorch 2.6 CPU, or with --cuda (or
#   SCALEVEC_CUDA=1) LibTorch 2.6 + CUDA 12.4 + NCCL (needs the contrib and non-free components).
#   SCALEVEC_CUDNN_DIR=DIR  a folder holding libcudnn.so.9 to use instead of the nvidia-cudnn
#                           package's download from NVIDIA (which fails offline); found by itself
#                           under /usr/local/cuda*/lib64 when unset.
#   SCALEVEC_SKIP_PACKAGES=1  build only (any other distribution, or a LibTorch of your own).
#   BUILD_DIR               default build (CPU) or build-cuda (--cuda).
set -euo pipefail
cd "$(dirname "$0")/.."

cuda="${SCALEVEC_CUDA:-0}"
if [ "${1:-}" = "--cuda" ]; then
  cuda=1
  shift
fi

. /etc/os-release 2>/dev/null || true
debian_major=""
[ "${ID:-}" = "debian" ] && debian_major="${VERSION_ID:-}"

other_distribution() {
  cat >&2 <<EOF
setup: this script installs packages on Debian 12 or 13 only (found: ${PRETTY_NAME:-unknown}).
Install by hand: a C++17 compiler, CMake >= 3.18, Ninja, LibTorch (1.13 or 2.x; CUDA build for
GPUs), yaml-cpp, spdlog, GoogleTest, sentencepiece (library + headers), and Gloo headers for CPU
data parallelism. Then build with SCALEVEC_SKIP_PACKAGES=1 and tell CMake where LibTorch is:
  LibTorch from pytorch.org:   SCALEVEC_SKIP_PACKAGES=1 bash scripts/setup.sh -DCMAKE_PREFIX_PATH=/path/to/libtorch
  LibTorch from Python torch:  SCALEVEC_SKIP_PACKAGES=1 bash scripts/setup.sh \\
                                 -DCMAKE_PREFIX_PATH="\$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')"
EOF
  exit 1
}

packages=(
  build-essential cmake ninja-build git pkg-config
  libyaml-cpp-dev libspdlog-dev libgtest-dev
  zlib1g-dev libzstd-dev libsimdjson-dev   # corpus inputs: .gz, .zst, JSON Lines
  libsentencepiece-dev sentencepiece
  libopenblas0-pthread   # BLAS for LibTorch: without it Debian falls back to reference BLAS (5x slower)
  bible-kjv              # the default embedded corpus (`bible` prints the KJV text)
  python3 python3-matplotlib python3-yaml   # sweeps and plots
)
if [ "$cuda" = 1 ]; then
  # libtorch-cuda-2.6 depends on libgloo-cuda-0, which replaces libgloo-0: its headers are in
  # libgloo-cuda-dev, without which the CUDA build has no Gloo (CPU) backend.
  packages+=(libtorch-cuda-dev nvidia-cuda-toolkit libnccl-dev libgloo-cuda-dev)
else
  # python3-torch: the independent check of exported models (tests/export_check.sh, CPU builds).
  packages+=(libtorch-dev libgloo-dev python3-torch)
fi

# cuDNN: nvidia-cudnn (a dependency of libtorch-cuda) downloads cuDNN from NVIDIA in its postinst.
# Where a libcudnn.so.9 is already here, decline that download and register this one instead.
cudnn_dir="${SCALEVEC_CUDNN_DIR:-}"
if [ "$cuda" = 1 ] && [ -z "$cudnn_dir" ]; then
  for d in /usr/local/cuda*/lib64 /usr/local/cuda*/lib; do
    [ -e "$d/libcudnn.so.9" ] && { cudnn_dir="$d"; break; }
  done
fi

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ "${SCALEVEC_SKIP_PACKAGES:-0}" != 1 ]; then
  case "$debian_major" in
    12) [ "$cuda" = 1 ] && { echo "setup: --cuda needs Debian 13 (Debian 12 ships no CUDA LibTorch); or a LibTorch of your own:" >&2; other_distribution; } ;;
    13) ;;
    *) other_distribution ;;
  esac
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    if [ "$cuda" = 1 ]; then
      # (captured first: grep -q closing the pipe early would fail the pipeline under pipefail)
      policy=$(apt-cache policy libtorch-cuda-dev)
      if ! grep -q 'Candidate: [0-9]' <<<"$policy"; then
        echo "setup: libtorch-cuda-dev not found: enable the contrib and non-free components in" >&2
        echo "  /etc/apt/sources.list.d/debian.sources (Components: main contrib non-free non-free-firmware)" >&2
        exit 1
      fi
      if [ -n "$cudnn_dir" ]; then
        echo "setup: using $cudnn_dir/libcudnn.so.9 instead of nvidia-cudnn's download"
        echo "nvidia-cudnn nvidia-cudnn/question select I Decline" | $SUDO debconf-set-selections
      fi
    fi
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi
if [ "$cuda" = 1 ] && [ -n "$cudnn_dir" ] && ! grep -q 'libcudnn\.so\.9 ' <<<"$(ldconfig -p)"; then
  # libtorch_cuda.so needs libcudnn.so.9 at link and load time; ld and ld.so both read ld.so.conf.
  echo "$cudnn_dir" | $SUDO tee /etc/ld.so.conf.d/scalevec-cudnn.conf >/dev/null
  $SUDO ldconfig
fi

cmake_args=()
if [ "$cuda" = 1 ]; then
  build_dir="${BUILD_DIR:-build-cuda}"
  # Kernels for A100 (sm_80) and H100 (sm_90); Caffe2's cuda.cmake turns this into -gencode flags.
  cmake_args+=(-DTORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}")
else
  build_dir="${BUILD_DIR:-build}"
fi
start=$(date +%s)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cmake_args[@]}" "$@" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
echo "setup: built $build_dir/scalevec in $(($(date +%s) - start)) s"
