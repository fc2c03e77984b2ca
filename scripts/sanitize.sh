#!/usr/bin/env bash
# `make sanitize`: builds the whole tree (core, plugins, tests, fuzz targets) with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer in its own folder, then runs the test
# suite there. Any sanitizer report fails the test that triggers it.
#   usage: scripts/sanitize.sh [BUILD_DIR]     (default: build-sanitize)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-"$root/build-sanitize"}
jobs=${UNITRAIN_JOBS:-$(nproc)}

UNITRAIN_EXTRA_PACKAGES="clang libclang-rt-14-dev" "$root/scripts/setup.sh" --deps-only

if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_COMPILER=clang++ -DUNITRAIN_FUZZ=ON \
    -DUNITRAIN_BUILD_TESTS=ON -DUNITRAIN_BUILD_BENCH=OFF
fi
cmake --build "$build_dir" -j "$jobs"

source "$root/scripts/sanitizer_env.sh"
cd "$build_dir"
ctest --output-on-failure -j "$jobs"
