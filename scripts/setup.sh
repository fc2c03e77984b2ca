#!/usr/bin/env bash
# Installs every Debian package unitrain needs, then configures and builds it in
# Release. Idempotent: packages already present are not reinstalled, and an existing
# build directory is reused (ccache keeps rebuilds short).
#   usage: scripts/setup.sh [--deps-only] [BUILD_DIR]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
deps_only=0
if [[ "${1:-}" == "--deps-only" ]]; then deps_only=1; shift; fi
build_dir=${1:-"$root/build"}

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-openmp libblas-dev libgloo-dev
  libboost-dev nlohmann-json3-dev libopencv-dev libfmt-dev
  libgtest-dev libgmock-dev libcli11-dev
  libsentencepiece-dev sentencepiece
  # Tests check the weight readers against files that PyTorch itself writes.
  python3-torch python3-torchvision
  # Tests read TensorBoard event files back and render the run report.
  python3-protobuf chromium
)

# More packages for one purpose (scripts/sanitize.sh: clang and its sanitizer runtimes).
if [[ -n "${UNITRAIN_EXTRA_PACKAGES:-}" ]]; then
  read -ra extra <<< "$UNITRAIN_EXTRA_PACKAGES"
  packages+=("${extra[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != *"install ok installed"* ]]; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ((deps_only)); then exit 0; fi

jobs=${UNITRAIN_JOBS:-$(nproc)}
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DUNITRAIN_BUILD_TESTS=ON -DUNITRAIN_BUILD_BENCH=ON
fi
cmake --build "$build_dir" -j "$jobs"
