#!/usr/bin/env bash
# Installs the SDK into a temporary prefix, builds examples/out_of_tree_plugin against
# it, and loads the plugin with the installed unitrain.
#   usage: out_of_tree_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/lib/cmake/unitrain/unitrainConfig.cmake"
test -f "$tmp/prefix/include/unitrain/plugin_abi.h"

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
# The plugin's compiler must be the SDK's (the loader compares __GXX_ABI_VERSION, which
# differs between g++ and clang++, as in the sanitizer build).
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
cmake -S "$src/examples/out_of_tree_plugin" -B "$tmp/example" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" ${compiler:+-DCMAKE_CXX_COMPILER="$compiler"} \
  "${launcher[@]}" >/dev/null
cmake --build "$tmp/example" >/dev/null

plugin="$tmp/example/plugins/liblinear_probe.so"
test -f "$plugin"
out=$(UNITRAIN_PLUGIN_PATH="$tmp/example/plugins" "$tmp/prefix/bin/unitrain" plugins --json --kind head)
echo "$out" | grep -q '"name": "linear_probe"' || { echo "linear_probe not listed: $out"; exit 1; }
echo "$out" | grep -q "\"file\": \"$plugin\"" || { echo "wrong file: $out"; exit 1; }
echo "$out" | grep -q '"origin": "UNITRAIN_PLUGIN_PATH"' || { echo "wrong origin: $out"; exit 1; }
# The installed binary finds the installed plugins beside it.
all=$("$tmp/prefix/bin/unitrain" plugins)
echo "$all" | grep -q "(from installed beside the executable)" || { echo "installed plugins: $all"; exit 1; }
show=$("$tmp/prefix/bin/unitrain" --plugin "$plugin" plugins show linear_probe)
echo "$show" | grep -q '"num_labels": 2' || { echo "defaults missing: $show"; exit 1; }
echo "out-of-tree plugin built against the installed SDK and loaded: OK"
