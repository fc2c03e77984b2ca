#!/usr/bin/env bash
# The main job: list the plugins and validate the default experiment.
#   usage: scripts/demo.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-"$root/build"}
unitrain="$build_dir/bin/unitrain"

echo "== plugins"
"$unitrain" plugins
echo
echo "== validate experiments/smoke.json"
"$unitrain" --plugin-dir "$build_dir/test_plugins/good" validate "$root/experiments/smoke.json" > "$build_dir/smoke.resolved.json"
echo "resolved experiment written to $build_dir/smoke.resolved.json"
