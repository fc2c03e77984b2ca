#!/usr/bin/env bash
# Every task's metrics of a trained run at its default eval batch size and at batch 1
# (predict's path), side by side with the difference: a model whose predictions do not
# depend on the batch's padding gives the same numbers.
#   usage: bench/eval_batch_invariance.sh RUN_DIR [EXPERIMENT] [BUILD_DIR]
#   (EXPERIMENT defaults to RUN_DIR/experiment.resolved.json)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run=${1:?usage: $0 RUN_DIR [EXPERIMENT] [BUILD_DIR]}
experiment=${2:-"$run/experiment.resolved.json"}
unitrain=${3:-"$root/build"}/bin/unitrain
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

tasks=$(python3 -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["tasks"]))' \
  "$experiment")
ones=()
for t in $tasks; do ones+=(--set "tasks.$t.eval_batch_size=1"); done
"$unitrain" eval "$experiment" --checkpoint "$run" --out "$tmp/default.json" > /dev/null
"$unitrain" eval "$experiment" --checkpoint "$run" "${ones[@]}" --out "$tmp/one.json" > /dev/null
python3 - "$tmp/default.json" "$tmp/one.json" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
print(f"{'task':<10} {'metric':<14} {'default':>9} {'batch 1':>9} {'difference':>11}")
worst = 0.0
for task, metrics in a.items():
    for name, value in metrics.items():
        if isinstance(value, (int, float)):
            d = b[task][name] - value
            worst = max(worst, abs(d))
            print(f"{task:<10} {name:<14} {value:>9.4f} {b[task][name]:>9.4f} {d:>11.5f}")
print(f"largest difference: {worst:.5f}")
PY
