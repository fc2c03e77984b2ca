#!/usr/bin/env bash
# Every built-in plugin links the kit (libunitrain_kit, the SDK) and not the engine
# (libunitrain_core): the boundary of docs/plugin_guide.md, checked on the built files.
#   usage: plugin_boundary_test.sh BUILD_DIR
set -euo pipefail
build=$1
plugins=("$build"/plugins/*.so)
((${#plugins[@]} >= 12)) || { echo "expected the 12 built-in plugin libraries, found ${#plugins[@]}"; exit 1; }
for plugin in "${plugins[@]}"; do
  needed=$(readelf -d "$plugin")
  grep -q 'Shared library: \[libunitrain_kit\.so' <<<"$needed" \
    || { echo "$plugin does not link libunitrain_kit:"; echo "$needed"; exit 1; }
  if grep -q 'libunitrain_core' <<<"$needed"; then
    echo "$plugin links the engine (libunitrain_core):"; echo "$needed"; exit 1
  fi
done
echo "${#plugins[@]} plugins link the kit alone"
