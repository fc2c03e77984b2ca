#!/usr/bin/env bash
# The main job: generate the toy suite (once; reused from the cache folder), then train
# UniT on its eight datasets at once and print every task's metric next to chance.
#   usage: scripts/demo.sh [BUILD_DIR] [extra unitrain train arguments...]
#   environment: UNITRAIN_TOY_SUITE (default .cache/toy_suite), UNITRAIN_DEMO_OUT,
#   UNITRAIN_DEMO_PROCESSES (default: the number of cores; 2 or more trains on two)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-"$root/build"}
shift || true
unitrain="$build_dir/bin/unitrain"
export UNITRAIN_TOY_SUITE=${UNITRAIN_TOY_SUITE:-"$root/.cache/toy_suite"}
out=${UNITRAIN_DEMO_OUT:-"$root/runs/unit_toy8-$(date +%Y%m%d-%H%M%S)"}

echo "== plugins"
"$unitrain" plugins
echo
echo "== toy suite -> $UNITRAIN_TOY_SUITE"
# Written once; rewritten only when its options or the generator changed.
"$unitrain" make-toy-suite "$UNITRAIN_TOY_SUITE" --reuse --seed 1 --images 2000 --text 4000
echo
# One process per core, one intra-op thread each (docs/distributed.md): with two or more
# cores, two processes train unit_toy8_2proc, which is unit_toy8's training (the same
# global batches) split over them; on one core, unit_toy8 itself. UNITRAIN_DEMO_PROCESSES=1
# forces one process.
processes=${UNITRAIN_DEMO_PROCESSES:-$(nproc 2>/dev/null || echo 1)}
if [ "$processes" -ge 2 ]; then
  experiment=unit_toy8_2proc.json
  launch=(--nproc-per-node 2)
else
  experiment=unit_toy8.json
  launch=()
fi
echo "== train experiments/$experiment${launch[*]:+ ${launch[*]}} -> $out"
"$unitrain" train "$root/experiments/$experiment" "${launch[@]}" --out "$out" "$@" > /dev/null
echo "final metrics: $out/eval.json; per-step log: $out/metrics.jsonl"
