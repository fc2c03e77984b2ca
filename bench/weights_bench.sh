#!/usr/bin/env bash
# Load time and peak memory of unit_8task's state (~200M parameters, ~800 MB) in each
# weights format against reading the file's bytes. Needs ~4 GB in DIR.
#   usage: bench/weights_bench.sh [BUILD_DIR] [DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-"$root/build"}
dir=${2:-$(mktemp -d)}
"$build/bench/weights_bench" write "$root/experiments/unit_8task.json" "$dir"
/usr/bin/python3 "$root/bench/safetensors_to_torch.py" "$dir/unit.safetensors" "$dir/unit"
"$build/bench/weights_bench" measure "$dir/unit.safetensors" "$dir/unit.zip.pth" \
  "$dir/unit.legacy.pth" "$dir/unit.nested.pth" "$dir/unit.unitrain.pt"
