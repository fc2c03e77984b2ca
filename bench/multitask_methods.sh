#!/usr/bin/env bash
# Every scheduler and combine rule of docs/multitask.md against UniT's `ratios` with the
# plain sum, on the toy suite's eight tasks (experiments/unit_toy8.json), at the same
# number of batches: one-task methods run BATCHES updates, the all-task rules BATCHES / 8
# updates of eight batches. Prints each run's final headline metric per task, the time
# per update and the whole run's training time (throughput.json), one row per method and
# seed, as a Markdown table.
#   usage: bench/multitask_methods.sh [BUILD_DIR] [BATCHES] [SEEDS...]
#   environment: UNITRAIN_TOY_SUITE (default .cache/toy_suite), OUT (default runs/multitask-methods),
#     JOBS (runs at once, default 1), THREADS (the experiment's `threads` per run; default:
#     the experiment's). On 2 cores, JOBS=2 THREADS=1 finishes the table in about half the
#     time; the s / update column is then that of one core beside another run. Finished
#     runs (eval.json present) are kept, so an interrupted table resumes.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-"$root/build"}
batches=${2:-800}
shift 2 || true
seeds=("$@")
((${#seeds[@]})) || seeds=(1 2)
unitrain="$build_dir/bin/unitrain"
export UNITRAIN_TOY_SUITE=${UNITRAIN_TOY_SUITE:-"$root/.cache/toy_suite"}
out=${OUT:-"$root/runs/multitask-methods"}
mkdir -p "$out"
"$unitrain" make-toy-suite "$UNITRAIN_TOY_SUITE" --reuse --seed 1 --images 2000 --text 4000 >&2

all=$((batches / 8))
# name | --set arguments
methods=(
  "ratios+sum|scheduler.type=ratios training.max_steps=$batches"
  "mtdnn_epoch|scheduler.type=mtdnn_epoch training.max_steps=$batches"
  "stop_and_go|scheduler.type=stop_and_go training.max_steps=$batches training.eval_every=$((batches / 8)) training.eval_max_batches=4"
  "all+sum|step.tasks=\"all\" training.max_steps=$all"
  "all+uncertainty_weighting|step.tasks=\"all\" step.combine.type=uncertainty_weighting training.max_steps=$all"
  "all+gradnorm|step.tasks=\"all\" step.combine.type=gradnorm training.max_steps=$all"
  "all+pcgrad|step.tasks=\"all\" step.combine.type=pcgrad training.max_steps=$all"
  "all+cagrad|step.tasks=\"all\" step.combine.type=cagrad training.max_steps=$all"
  "all+famo|step.tasks=\"all\" step.combine.type=famo training.max_steps=$all"
  "uncertainty|scheduler.type=uncertainty training.max_steps=$batches"
)
jobs=${JOBS:-1}
thread_args=()
[[ -n "${THREADS:-}" ]] && thread_args=(--set "threads=$THREADS")
train_one() {  # name seed sets...
  local name=$1 seed=$2
  shift 2
  local run="$out/$name-seed$seed" args=()
  for s in "$@"; do args+=(--set "$s"); done
  echo "== $name seed $seed" >&2
  "$unitrain" train "$root/experiments/unit_toy8.json" --out "$run" --force --set "seed=$seed" \
    --set training.eval_every=0 "${thread_args[@]}" "${args[@]}" > "$run.log" 2>&1 \
    || echo "failed: $run.log" >&2
}
# Both seeds of a method run before the next method, so a partial table compares methods.
running=0
for entry in "${methods[@]}"; do
  for seed in "${seeds[@]}"; do
    name=${entry%%|*}
    [[ -f "$out/$name-seed$seed/eval.json" ]] && continue
    read -ra sets <<< "${entry#*|}"
    if ((running >= jobs)); then wait -n || true; running=$((running - 1)); fi
    train_one "$name" "$seed" "${sets[@]}" &
    running=$((running + 1))
  done
done
wait
python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
tasks = ["coco", "vg", "vqa2", "snli_ve", "qnli", "mnli_mm", "qqp", "sst2"]
print("| method | seed | " + " | ".join(tasks) + " | updates | s / update | train s |")
print("|---" * (len(tasks) + 5) + "|")
for run in sorted(p for p in out.iterdir() if p.is_dir() and (p / "eval.json").exists()):
    name, seed = run.name.rsplit("-seed", 1)
    ev = json.loads((run / "eval.json").read_text())
    th = json.loads((run / "throughput.json").read_text())["all"]
    cells = []
    for t in tasks:
        m = ev.get(t, {})
        key = "ap50" if "ap50" in m else (next(iter(m)) if m else None)
        cells.append(f"{m[key]:.3f}" if key else "-")
    steps = json.loads((run / "experiment.resolved.json").read_text())["training"]["max_steps"]
    per = th["seconds"] / steps if steps else 0
    print(f"| {name} | {seed} | " + " | ".join(cells) + f" | {steps} | {per:.3f} | {th['seconds']:.0f} |")
PY
