#!/usr/bin/env bash
# The full-size model's step time per task: bench/step_bench on
# experiments/bench/unit_8task_toy.json (unit_8task's ResNet-50 DC5 + BERT-base + 6-layer
# decoder, UniT's batches and image sizes, random weights) over the toy suite. Extra
# arguments go to step_bench, e.g. for a GPU in one short script:
#   bench/step_bench_unit_8task.sh build --device cuda --autocast bf16 --steps 10
#   usage: bench/step_bench_unit_8task.sh [BUILD_DIR] [step_bench arguments...]
#   environment: UNITRAIN_TOY_SUITE (default .cache/toy_suite; made if missing),
#     REFERENCE=1 to time the plain-LibTorch reference too (twice the time),
#     BATCH_SIZE=N for every task's batch instead of unit_8task's 8 (on a CPU, batch 1
#     peaked at 15 GB and batch 2 went past 24 GiB)
# Defaults: 1 round of 1 warm-up + 2 timed steps per task (later arguments win).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-"$root/build"}
shift || true
export UNITRAIN_TOY_SUITE=${UNITRAIN_TOY_SUITE:-"$root/.cache/toy_suite"}
"$build/bin/unitrain" make-toy-suite "$UNITRAIN_TOY_SUITE" --reuse --seed 1 --images 2000 --text 4000 >&2
# unit_8task's VQAv2 head has UniT's 3129 answers; the toy suite has a handful. The
# answer file gives the toy answers their ids and fills the rest of the 3129 with
# answers no question has, so the head keeps its full size.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/bin/unitrain" validate "$root/experiments/bench/unit_8task_toy.json" > "$tmp/resolved.json"
python3 - "$tmp" "$UNITRAIN_TOY_SUITE" "${BATCH_SIZE:-}" "$root/experiments/bench/unit_8task_toy.json" <<'PY'
import json, pathlib, sys
tmp, toy, batch, base = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4]
resolved = json.loads((tmp / "resolved.json").read_text())
size = resolved["model"]["heads"]["vqa2"]["num_labels"]
answers = set()
for split in ("train", "val"):
    for a in json.loads((toy / f"vqa2/v2_mscoco_{split}2014_annotations.json").read_text())["annotations"]:
        answers.add(a["multiple_choice_answer"])
        answers.update(x["answer"] for x in a["answers"])
answers = sorted(answers)[:size]
answers += [f"unused answer {i}" for i in range(size - len(answers))]
(tmp / "answers.txt").write_text("\n".join(answers) + "\n")
tasks = {"vqa2": {"dataset": {"answers_file": str(tmp / "answers.txt")}}}
if batch:
    for t in resolved["tasks"]:
        tasks.setdefault(t, {})["batch_size"] = int(batch)
(tmp / "experiment.json").write_text(json.dumps({"include": [base], "tasks": tasks}))
PY
experiment="$tmp/experiment.json"
"$build/bench/unitrain_step_bench" --experiment "$experiment" \
  --toy "$UNITRAIN_TOY_SUITE" --rounds 1 --warmup 1 --steps 2 \
  $([[ "${REFERENCE:-0}" == 1 ]] || echo --no-reference) "$@"
