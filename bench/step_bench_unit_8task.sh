#!/usr/bin/env bash
# The full-size model's step time per task: bench/step_bench on
# experiments/bench/unit_8task_toy.json (unit_8task's ResNet-50 DC5 + BERT-base + 6-layer
# decoder, UniT's batches and image sizes, random weights) over the toy suite. Extra
# arguments go to step_bench, e.g. for a GPU in one short script:
#   bench/step_bench_unit_8task.sh build --device cuda --autocast bf16 --steps 10
#   usage: bench/step_bench_unit_8task.sh [BUILD_DIR] [step_bench arguments...]
#   environment: UNITRAIN_TOY_SUITE (default .cache/toy_suite; made if missing),
#     REFERENCE=1 to time the plain-LibTorch reference too (twice the time),
#     BATCH_SIZE=N for every task's batch instead of unit_8task's 8 (a CPU with less
#     than ~40 GiB cannot hold a detection step of 8 images at 800 px)
# Defaults: 1 round of 1 warm-up + 2 timed steps per task (later arguments win).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-"$root/build"}
shift || true
export UNITRAIN_TOY_SUITE=${UNITRAIN_TOY_SUITE:-"$root/.cache/toy_suite"}
"$build/bin/unitrain" make-toy-suite "$UNITRAIN_TOY_SUITE" --reuse --seed 1 --images 2000 --text 4000 >&2
experiment="$root/experiments/bench/unit_8task_toy.json"
if [[ -n "${BATCH_SIZE:-}" ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  tasks=""
  for t in coco vg vqa2 snli_ve qnli mnli_mm qqp sst2; do
    tasks+="${tasks:+, }\"$t\": {\"batch_size\": $BATCH_SIZE}"
  done
  echo "{\"include\": [\"$experiment\"], \"tasks\": {$tasks}}" > "$tmp/batch.json"
  experiment="$tmp/batch.json"
fi
"$build/bench/unitrain_step_bench" --experiment "$experiment" \
  --toy "$UNITRAIN_TOY_SUITE" --rounds 1 --warmup 1 --steps 2 \
  $([[ "${REFERENCE:-0}" == 1 ]] || echo --no-reference) "$@"
